// defparam, even into itself.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  assign y = a ^ b;
  defparam top_module.W = 1;
endmodule
