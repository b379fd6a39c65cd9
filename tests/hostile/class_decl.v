// A class inside the design.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  class C; endclass
  assign y = a ^ b;
endmodule
