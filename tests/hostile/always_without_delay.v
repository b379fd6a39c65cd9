// An always block with no delay or event control never yields.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  reg t = 0;
  always t = ~t;
  assign y = a ^ b;
endmodule
